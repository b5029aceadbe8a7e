"""Who may do what: principals, roles, permissions, tokens, sessions and the audit trail."""
