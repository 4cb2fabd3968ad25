"""Online state: everything that every accepted event updates before it is acknowledged."""
