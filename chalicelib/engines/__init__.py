"""The engines function: RapidOCR, the dlib face engine, the head-turn liveness rules and the dlib face
index in one container-image Lambda (``handler``), for the stages whose API package holds none of them."""
