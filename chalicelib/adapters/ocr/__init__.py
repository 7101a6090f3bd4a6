"""OCR port (证件识别) and its local engine (``rapidocr.RapidOcrEngine``, models shipped in the wheel)."""
