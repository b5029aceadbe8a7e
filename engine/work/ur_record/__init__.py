"""The UR nurse's record of a stay: utilization reviews, payer authorizations and their
communications, discharge barriers and avoidable days.

One module per record. Every write checks the caller's permission, validates against the
stay (dates inside it, codes from the site's lists) with a message that names the field,
keeps who and when, and never erases: a correction keeps the state before it as a
RecordRevision (engine.work.ur_record.revisions); a record entered in error is voided.
"""
