"""The bundled master: scheduler and operator HTTP APIs, offers, tasks, agents."""
