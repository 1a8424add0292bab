"""Tests of the sealroom Python client (most against a real server: see conftest.py)."""
