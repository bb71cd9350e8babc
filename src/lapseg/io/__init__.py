"""lapseg.io"""
