"""Inference behind every interval, test and verdict: pure numpy/scipy, no torch, no project imports.
"""
