"""Face engines (人脸比对): its local (dlib) and Rekognition implementations.

Importing this package loads no model and no AWS client; ``local`` loads dlib's models on first use.
"""
