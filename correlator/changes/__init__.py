"""ITIL Change Management where it meets events: change records, maintenance windows, change-caused incidents.

Read service.py first; model.py holds the record and its state machine, calendar.py the recurring
windows, occurrences.py what a window's occurrence becomes and when a new calendar withdraws it,
reload.py the calendar file's reloads, scope.py which events a change covers, stage.py the two
pipeline stages.
"""
