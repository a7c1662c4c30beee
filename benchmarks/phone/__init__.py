"""Figures from a real phone: the script that times every .tflite over adb, and the benchmark_model logs
brought back, kept in their own column apart from host figures.

Owns: script.py (`mobilepack device-bench`), results.py (`bench --device-results`). May import train and
convert only.
"""
