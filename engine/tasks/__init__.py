"""Work on tasks: lifecycle, history, staffing, assignment and escalation."""
