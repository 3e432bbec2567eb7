"""helpdeskd.mail"""
