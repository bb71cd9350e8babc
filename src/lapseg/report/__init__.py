"""lapseg.report"""
