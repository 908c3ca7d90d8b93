"""Camera sources: picamera2 on the Pi, files (video, image, glob, folder) and V4L2 webcams.

``source.py`` is the grammar of ``camera.source`` (light: config validation imports it),
``base.py`` the types every camera shares, one module per kind of camera, and ``open.py`` the
factory that maps a parsed source to its camera. Nothing is imported here, so the grammar can be
used without loading OpenCV.
"""
