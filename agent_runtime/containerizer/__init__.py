"""Containerizers and launchers: how an executor process is started and watched."""
