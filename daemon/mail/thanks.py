"""Is a customer's reply only a thank-you?

Customers answer a resolution with "Thank you!", and the resolution invites replies: read
as a follow-up, every polite customer would put a closed request back in the queue (or,
after the grace period, open a new one). A reply of thanks alone is kept on the request
and changes nothing; anything more (a question, a word of complaint, an attachment) is a
follow-up as before. The test is deliberately narrow: every word must be one of thanks,
praise, greeting or sign-off, or the writer's own name, and there must be a word of thanks.
No digit and no symbol but a kind face or heart: "Thanks! 4471923" brings the order number
a cancellation asked for, "Thanks +49 170 1234567" a number to call back, "Thanks 😡" or
"Thanks -1/10" a complaint.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["only_thanks"]

#: at least one of these (a word's start: "thank" covers thanks, thankyou; "dank" danke)
_THANKS = re.compile(
    r"^(?:thank|thx|ty$|tysm$|cheers$|danke|dank|merci|gracias|grazie|bedankt|obrigad|"
    r"dziękuj|dzięki|dzieki|tack$|takk$|tak$|kiitos|спасибо|благодар|дякую|"
    r"teşekkür|köszönöm|děkuji|díky|mulțumesc|ευχαριστώ|"
    r"хвала$|hvala$|kiitoksia|köszi|mersi$|aitäh|ačiū|paldies|ďakujem|dakujem|"
    r"tänan|kasih$|cảm$|شكر|متشكر|ممنون|תודה|"
    r"cám$|makasih$|terimakasih$|trims$|asante$|ahsante$|salamat$|"  # vi, id/ms, sw, tl
    r"धन्यवाद|शुक्रिया|dhanyavaa?d$|dhanyawaa?d$|shukri(?:y?a|yaa)$|"  # hi (and as typed in Latin)
    r"ধন্যবাদ|நன்றி|شکر|متشکر|تشکر|سپاس|مرسی$)"  # bn, ta, ur/fa
)
#: ... and in scripts written without spaces, where one "word" may be a sentence: such a
#: word counts when it is made of these, one piece after another, and the words around
#: them (:data:`_AROUND_PIECES`): "谢谢", "本当にありがとうございました", "非常感谢您的帮助"
#: "ขอบคุณมากครับ" (a prefix would let "谢谢但是…", "thanks, but …", pass)
_THANKS_PIECES = frozenset("""
谢谢 謝謝 多谢 多謝 感谢 感謝 致谢 ありがとう ありがとうございます ありがとうございました 有難う
どうも 감사합니다 감사드립니다 고맙습니다 감사해요 고마워요
ขอบคุณ ขอบใจ
""".split())
_AROUND_PIECES = frozenset("""
你 您 你们 您们 你們 大家 的 帮助 幫助 帮忙 幫忙 支持 回复 回覆 非常 十分 太 了 啦 哦 再次 真的 真是
晒 本当に 本当 大変 どうも 誠に 様 さん ご ご対応 対応 ご丁寧に 助かりました
ครับ คับ ค่ะ คะ ค่า นะ จ้า จ้ะ มาก ๆ สำหรับ ความช่วยเหลือ ที่ ช่วย ช่วยเหลือ คุณ ทุกอย่าง
""".split())

#: the other words a thank-you is made of, in the languages of the words above
_FILLER = frozenset("""
a again all alot also and answer appreciate appreciated awesome best brilliant cool dear
excellent fantastic fast for good great greetings have hello help helped helpful hey hi
it kind kindly lot lovely many much nice ok okay perfect quick quickly regards reply
response so solved sorted super that the this to very wonderful works worked you your yours
everything fine day
vielen viele herzlichen herzlich schön sehr toll prima perfekt alles klar gut
gruß grüße gruss grüsse lg mfg hallo liebe lieber sie dir euch für die hilfe schnelle
freundliche beste und noch mal einmal
beaucoup bien parfait génial cordialement bonjour salut bonne journée pour votre aide
à tous vous très
muchas mil perfecto saludos hola vale genial por su ayuda todo muy
mille tante perfetto ciao saluti buona giornata per tutto
je wel hartelijk groeten top fijn voor de hulp
muito muita perfeito olá obrigado obrigada pela ajuda
bardzo pozdrawiam za pomoc
большое огромное всё все работает привет здравствуйте помощь за вам вас с уважением
щиро дуже вам за допомогу
çok ederim ederiz yardımınız için iyi günler selamlar
så mycket hälsningar hej för hjälpen tusen mange fyrir kærar
paljon moc moc pěkně mnohokrát za pomoc szépen nagyon frumos mult πολύ
bạn anh chị nhiều rất terima banyak atas bantuannya puno lepa lijepa velika
جزيلا جزيل لكم لك الشكر كثيرا רבה לכם לך מאוד
정말 대단히 너무 진심으로 도와주셔서 ơn
xin lắm em ạ nhé sekali ya kak pak bu bantuan sana kwa msaada wako maraming po sa tulong inyo
बहुत आपका आपकी आप का की के लिए जी मदद सहायता नमस्ते bahut bahot aapka aapki ji madad ke liye
অনেক আপনাকে மிக்க உங்களுக்கு بہت آپ کا خیلی از شما لطف با
""".split())

#: the combining marks of the Indic scripts and Thai, part of their words (Devanagari's
#: vowel signs and virama, Thai's vowels and tone marks: no word characters to ``re``),
#: and the joiners inside Persian words
_MARKS = "".join(chr(c) for c in range(0x900, 0xE80) if unicodedata.category(chr(c)) in ("Mn", "Mc"))
_MARKS += "\u200c\u200d"
#: the faces a thank-you may end with, as typed (":D" is no word, "<3" no number)
_EMOTICONS = re.compile(r"[:;=]-?[)D\]]|<3|\^_?\^|[xX]D\b")
#: the symbols a thank-you may carry: kind faces, thanking hands, hearts, flowers, stars,
#: a tick; and the parts emoji are written with (variation selector, joiner, skin tones)
_KIND = frozenset("🙂😊😀😃😄😁😆☺😉😇🥰😍🤗🥲🙏👍👌👏🙌💪❤♥💙💚💛💜🧡🤍🖤💕💖💗💝🌹🌸🌷💐✨🎉🎊💯✅✔"
                  "~～♪☆★")
_EMOJI_PARTS = frozenset("\ufe0f\u200d") | frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
_WORD = re.compile(rf"[^\W\d_](?:[^\W\d_]|[{_MARKS}])*(?:'[^\W\d_]+)?")


def only_thanks(text: str, names: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` (a reply's own words, quotes and signature left out) says only
    thank you; ``names`` are the writer's name and address, whose words may sign it."""
    body = text.strip()
    if not body or len(body) > 200 or "?" in body or "？" in body:
        return False
    if sum(1 for line in body.splitlines() if line.strip()) > 4:
        return False
    body = _EMOTICONS.sub(" ", body)
    if any(_says_more(c) for c in body):
        return False
    own = {w.casefold() for name in names for w in _WORD.findall(name.replace(".", " "))}
    words = [w.casefold() for w in _WORD.findall(body)]
    read = [_read(w, own) for w in words]
    return all(read) and any(r == "thanks" for r in read)


def _says_more(char: str) -> bool:
    """Whether ``char`` is a digit (of any script) or a symbol other than a kind one."""
    if char in _KIND or char in _EMOJI_PARTS:
        return False
    return unicodedata.category(char)[0] in "NS"


def _read(word: str, own: set[str]) -> str:
    """What ``word`` is in a thank-you: "thanks", "filler" (the words around thanks, the
    writer's name), or "" (anything else)."""
    if _unspaced(word):
        pieces = _pieces(word)
        if pieces is not None:
            return "thanks" if pieces else "filler"
    elif _THANKS.match(word):
        return "thanks"
    return "filler" if word in _FILLER or word in own else ""


def _unspaced(word: str) -> bool:
    """Whether ``word`` is in a script written without spaces (Chinese, Japanese, Korean,
    Thai): one "word" there may be a whole sentence."""
    return any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" or "\u0e00" <= c <= "\u0e7f"
               for c in word)


def _pieces(word: str) -> bool | None:
    """Whether ``word`` (in a script written without spaces) is made only of pieces of
    thanks and the words around them: True with a piece of thanks among them
    ("本当にありがとうございました"), False without ("นะครับ"), None when it is not."""
    ends: dict[int, bool] = {0: False}  # position reached → a piece of thanks on the way
    for start in range(len(word)):
        if start not in ends:
            continue
        for end in range(start + 1, min(len(word), start + 14) + 1):
            piece = word[start:end]
            if piece in _THANKS_PIECES or piece in _AROUND_PIECES:
                ends[end] = ends.get(end, False) or ends[start] or piece in _THANKS_PIECES
    return ends.get(len(word))
