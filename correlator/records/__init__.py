"""Storage of Change and Problem management records (changes, problems, known errors).

store.py holds the protocol and the back-end choice; sqlite.py and postgres.py implement it.
"""
