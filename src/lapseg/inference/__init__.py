"""lapseg.inference"""
