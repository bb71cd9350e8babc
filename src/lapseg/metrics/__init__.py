"""lapseg.metrics"""
