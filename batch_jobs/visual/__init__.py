"""Visual NER: OCR of page images, synthetic forms for tests and benchmarks."""
