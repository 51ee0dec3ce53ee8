"""ITIL Problem Management fed by incidents: recurrence detection, problems, known errors and trends.

Read service.py first; model.py holds the records, recurrence.py the signature counting,
conditions.py the known-error match conditions, stage.py the pipeline stage.
"""
