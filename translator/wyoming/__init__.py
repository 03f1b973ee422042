"""``translator wyoming``: the translator as Wyoming protocol speech services (Home Assistant).

The protocol apart from the engine: protocol.py reads and writes events within bounds, pcm.py
converts audio, server.py listens and bounds the sessions, connection.py serves one client and
hands each event to its service (asr.py, tts.py, handle.py; stream.py runs an asr request's
pipeline), engine.py holds the loaded models every connection shares, info.py says what is offered.
"""
