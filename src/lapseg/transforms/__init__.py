"""lapseg.transforms"""
