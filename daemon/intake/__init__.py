"""helpdeskd.intake"""
