"""CRM case sync: escalated conversations become cases in a CRM (embedded or Salesforce).

``port.CaseStore`` is the port; ``local.LocalCaseStore`` (eventsourcing on SQLite) and
``salesforce.SalesforceCaseStore`` (simple-salesforce) implement it;
``projection.CrmProjection`` folds the log into whichever one the settings choose.
"""
