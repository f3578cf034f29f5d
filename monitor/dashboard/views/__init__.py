"""The dashboard's pages, one module per kind of page."""
