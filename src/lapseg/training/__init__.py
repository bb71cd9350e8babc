"""lapseg.training"""
