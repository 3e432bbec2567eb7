"""helpdeskd.outbound"""
