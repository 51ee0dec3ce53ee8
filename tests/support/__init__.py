"""Helpers the tests share: free ports, a real daemon in a subprocess, tool lookup."""
