"""The personal-data read log (查阅日志): every read of personal data in clear, who, when, which record,
which fields and why; searchable by auditors."""
