"""Who is calling and what they may do: credentials, HTTP authentication, the local authorizer
(``--acls``), executor tokens, and TLS. Used by both daemons' HTTP layers and the agent link;
nothing here imports the master or the agent."""
