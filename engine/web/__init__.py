"""The web worklist: server-rendered pages for the people who do the work."""
