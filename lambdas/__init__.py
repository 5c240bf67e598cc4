"""Thin AWS Lambda entry points over the annotrain services."""
