"""Liveness engines (活体检测): its local (head-turn burst) and Rekognition implementations.

Importing this package loads no model and no AWS client.
"""
