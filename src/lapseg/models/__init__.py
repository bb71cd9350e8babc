"""lapseg.models"""
