"""The monitor's web dashboard: gates, events, people, reports and commands in a browser.

Starlette serves server-rendered pages (Jinja2 templates, one per page) from the
monitor's store; live updates reach the browser as server-sent events, each with an id
so a reconnecting browser resumes where it left off. A small vendored htmx handles the
filter forms and paging; nothing is loaded from outside (a security room may have no
internet). Accounts, roles, CSRF, rate limiting and the audit log live in modules of
their own; views, one module per kind of page, read the store through its queries.
"""
