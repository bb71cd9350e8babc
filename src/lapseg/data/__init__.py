"""lapseg.data"""
