"""The event store on SQLite or PostgreSQL (`store`): its tables and upgrades (`schema`),
monthly partitions (`partitions`), received seq ranges for the gaps (`seqranges`),
presence queries (`presence_sql`), retention (`retention`) and the rows it hands out
(`records`)."""
