"""Text models: NER, assertion status and classification on a packaged encoder."""
