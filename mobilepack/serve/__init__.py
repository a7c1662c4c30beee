"""`mobilepack serve`: the exact .tflite bytes that will ship, behind a small HTTP API and a test page.

server.py runs it; models.py holds the checked artifacts; inputs.py checks what POST /predict accepts;
openapi.py and page.py describe and show it. May import train, convert and benchmarks.runners.
"""
