"""The words mail programs write above quoted history and under mobile mail, in many
languages: the vocabulary of :mod:`helpdeskd.mail.strip`, as regular-expression
alternatives (matched case-insensitively there)."""

from __future__ import annotations

#: the verb of an attribution line ("On <date>, <someone> wrote:")
VERBS = (
    r"wrote|writes|a\s+[ée]crit|schrieb|schreef|geschreven|ha\s+scritto|scrisse|"
    r"escribi[óo]|escreveu|escribiu|napisa[łl](?:\(a\)|a)?|napsal(?:\(a\)|a)?|"
    r"написал(?:\(а\)|а)?|написав|пише|пишет|kirjoitti|skrev|skriver|írta|yazdı|"
    r"kirjutas|a\s+scris|έγραψε|"
    # Thunderbird's and Gmail's attribution verbs in further languages ("W dniu <date>,
    # X pisze:", "Dňa <date> X napísal(a):", "<date>, X rašė:", "X skrifaði <date>:")
    r"pisze|napisao|napisala|napísal(?:\(a\)|a)?|написа|написао|написала|rašė|parašė|"
    r"rakstīja|skrifaði|skreiv|đã\s+viết|menulis|ha\s+escrit|va\s+escriure|"
    r"כתב(?:/ה|ה|ו)?|كتب|نوشت"
)

#: ... in Chinese, Japanese and Korean, written without word boundaries
VERBS_CJK = (
    r"写道|寫道|寫了|が書きました|は書きました|のメッセージ|님이\s*작성|이\(가\)\s*쓴\s*글|님이\s*쓴\s*글|"
    r"เขียนว่า"
)

#: the field names of a quoted header block (Outlook's From:/Sent:/To:/Subject:)
HEADER_NAMES = (
    # from
    "from|von|de|da|van|från|fra|od|от|від|lähettäjä|feladó|kimden|afzender|remetente|"
    "mittente|expéditeur|nadawca|odesílatel|发件人|寄件者|差出人|보낸 사람|message du|"
    # sent / date
    "sent|date|datum|gesendet|envoyé(?: le)?|enviado(?: el| em)?|enviada(?: em)?|inviato|"
    "data|verzonden|verstuurd|skickat|sendt|dato|wysłano|wysłane|odesláno|отправлено|"
    "дата|lähetetty|"
    "päivämäärä|elküldve|gönderildi|tarih|发送时间|日期|送信日時|보낸 날짜|傳送時間|"
    # to / cc / reply-to
    "to|an|à|a|para|aan|till|til|do|komu|кому|vastaanottaja|címzett|kime|收件人|宛先|"
    "받는 사람|cc|bcc|kopie|copie à|cópia|kopia|kopi|копия|抄送|副本|reply-to|"
    "antwort an|répondre à|risposta|"
    # subject
    "subject|betreff|objet|asunto|assunto|oggetto|onderwerp|ämne|emne|temat|předmět|"
    "тема|aihe|tárgy|konu|主题|主旨|件名|제목|"
    # more languages, one line each: from, sent/date, to, cc, subject. Sources: the
    # labels mail programs write in these languages as collected by crisp-oss/
    # email-forward-parser (lib/parser.js: Outlook, Gmail, Yahoo, Apple Mail and
    # Thunderbird, per locale) and Thunderbird's own translations (thunderbird-l10n,
    # mail/chrome/messenger/mime.properties). Outlook's "sent" words that neither
    # lists (Išsiųsta, Nosūtīts, Poslano, Изпратено, Στάλθηκε, Dikirim, Đã gửi, נשלח,
    # تم الإرسال, Saadetud) come from replies seen in review, unchecked against a public
    # list; from, to and subject are checked, and a block needs three different names.
    "de la|expeditorul|trimis|dată|către|destinatarul|subiectul|subiect|"  # ro
    "nuo|kas|išsiųsta|kam|kopija|tema|"  # lt
    "no|nosūtīts|datums|uz|tēma|temats|"  # lv
    "šalje|poslano|prima|naslov|predmet|"  # hr, bs, sr (latin)
    "za|kp|zadeva|"  # sl
    "odoslané|dátum|pre|kópia|"  # sk
    "изпратено|до|относно|"  # bg
    "από|στάλθηκε|ημερομηνία|προς|κοιν\\.|θέμα|"  # el
    "dari|dikirim|tanggal|kepada|perihal|subjek|"  # id
    "từ|đã gửi|ngày|đến|tới|chủ đề|tiêu đề|"  # vi
    "מאת|נשלח|תאריך|אל|עותק|נושא|"  # he
    "مِن|من|تم الإرسال|التاريخ|إلى|الموضوع|"  # ar
    "saatja|saadetud|kuupäev|adressaat|saaja|koopia|teema|"  # et
    "enviat(?: el)?|per a|assumpte|"  # ca
    "від кого|надіслано|відправлено|копія|"  # uk, besides від/кому/тема/дата above
    "gönderen|gönderilen|bilgi|"  # tr, besides kimden/gönderildi/kime/konu
    "másolat(?:ot kap)?|kopio|päiväys|"  # hu, fi
    "fecha|pour|sujet|adresat|dw|отправитель"  # es, fr (Thunderbird), pl, ru
)

#: what a mobile footer names as the sender's device or mail program
DEVICES = (
    r"iphone|ipad|ipod|android|blackberry|mobile|phone|cell|samsung|galaxy|outlook|"
    r"mail|yahoo|gmail|aol|windows|typeapp|airmail|spark|bluemail|proton|huawei|"
    r"xiaomi|nokia|htc|sony|motorola|pixel|tablet|device|smartphone|k-9|fairemail|"
    r"mailbox|handy|mobilgerät|téléphone|teléfono|telefone|telefono|telefoon"
)

#: "Sent from my ..." in many languages
SENT_FROM_MY = (
    r"sent from my|sent with my|sent on my|envoyé depuis mon|envoyé de mon|"
    r"gesendet von meinem|gesendet mit meinem|inviato dal mio|enviado desde mi|"
    r"enviado do meu|enviado de mi|sendt fra min|skickat från min|"
    r"verzonden met mijn|verzonden vanaf mijn|verstuurd vanaf mijn|verstuurd met mijn|"
    r"wysłane z mojego|odesláno z mého|отправлено с моего"
)

#: "Sent from/via/with ..." (followed by a device name)
SENT_VIA = (
    r"sent from|sent via|sent with|sent using|sent by|envoyé depuis|envoyé de|"
    r"envoyé à partir de|envoyé avec|gesendet von|gesendet mit|inviato da|inviato con|"
    r"enviado desde|enviado de|enviado do|enviado con|sendt fra|skickat från|"
    r"verzonden met|verzonden vanaf|verstuurd met|verstuurd vanaf|wysłane z|"
    r"odesláno z|отправлено с|отправлено из"
)

#: the words a letter opens with ("Hello Ann,", "Dear team", "Guten Tag", "Bonjour"): a
#: request's title is not its greeting; a reason written as a letter keeps its own
GREETINGS = (
    r"hello|hi|hey|dear|greetings|good\s+(?:morning|afternoon|evening|day)|hallo|moin|servus|"
    r"guten\s+(?:tag|morgen|abend)|liebes?|lieber|sehr\s+geehrte[rs]?|bonjour|bonsoir|hola|"
    r"buen(?:os|as)\s+(?:días|dias|tardes)|buongiorno|ciao|salve|hej|hoi|goedemorgen|goedendag|"
    r"beste|olá|ola|bom\s+dia|boa\s+tarde"
)
