"""Tests of webapp/engine: the capture engine apart from the web, through Redis."""
