"""The web worklist: server-rendered pages for case managers, UR nurses and supervisors.

Plain HTML forms (POST, then redirect), sorting and filtering by query parameters, one
stylesheet, no JavaScript build. Every page that shows patient data leaves an audit note.
"""
