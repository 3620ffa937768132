'use strict';
// Report → LSP diagnostics. The report's positions are 1-based lines and 1-based columns in UTF-16
// code units with an exclusive end; LSP positions are 0-based lines and 0-based UTF-16 characters (the
// default position encoding, which this server keeps), also with an exclusive end.

const SEVERITY = { error: 'Error', warning: 'Warning', info: 'Information' };

/** Cheap pre-check so that unrelated YAML (CI workflows, compose files) never gets diagnostics. */
function mentionsIpPool(text) {
  return /\bIPPool(List)?\b/.test(text);
}

function position(line, column) {
  return { line: Math.max(line - 1, 0), character: Math.max(column - 1, 0) };
}

function toLspDiagnostics(report, DiagnosticSeverity) {
  return report.documents.flatMap((doc) =>
    doc.diagnostics.map((d) => ({
      range: { start: position(d.line, d.column), end: position(d.endLine, d.endColumn) },
      severity: DiagnosticSeverity[SEVERITY[d.severity]],
      code: d.code,
      source: 'ippool',
      message: d.hint ? `${d.message}\nhint: ${d.hint}` : d.message,
      data: { path: d.path, document: doc.index },
    })),
  );
}

module.exports = { mentionsIpPool, toLspDiagnostics };
