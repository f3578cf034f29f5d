"""What people read: the reports (`reports`) as a table, CSV or JSON (`output`), and the
live terminal view (`view`)."""
