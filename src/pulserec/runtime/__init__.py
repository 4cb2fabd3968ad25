"""What hosts engines in a server process, without HTTP: the apps (tenants) one server serves,
the background tasks beside each engine, live traffic windows and the read-only views operators
see (models, reports, the dashboard's overview), and `pulserec serve` as a child process."""
