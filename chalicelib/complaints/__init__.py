"""Complaints (投诉举报, 第二十一条): what an owner reports to the OEM about real-name registration, kept
with its description and contact phone sealed, numbered (投诉编号), listed to its author with its status
and to the OEM's reviewers and admins."""
