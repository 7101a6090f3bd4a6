"""Captcha challenges (图片验证码): a person proves they are one before a client asks for more codes."""
