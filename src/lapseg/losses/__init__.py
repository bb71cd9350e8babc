"""lapseg.losses"""
