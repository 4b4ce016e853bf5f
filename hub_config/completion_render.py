"""The completion record as people read it, pure: the certificate as HTML (templates/completion_certificate.html,
Jinja, light and dark, print-friendly) and as PDF (ReportLab's platypus, A4, DejaVu Sans from matplotlib's data so
that any name or title prints), the page that says what is still missing, and the public verification page.
The record itself and the credential: `completion`."""
from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .completion import MAX_RECORD_CHARS, CompletionRecord, Standing, Verdict

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)


def certificate_html(record: CompletionRecord) -> str:
    return _env.get_template("completion_certificate.html").render(record=record, s=record.setting)


def status_html(title: str, standing: Standing | None, headline: str, hint: str = "") -> str:
    """A page that says why there is no record: the course issues none, or what the learner still lacks."""
    lines = standing.missing() if standing is not None and standing.offered else []
    return _env.get_template("completion_status.html").render(title=title, headline=headline, lines=lines, hint=hint)


def verify_html(verdict: Verdict | None, text: str, action: str, jwks: str) -> str:
    return _env.get_template("completion_verify.html").render(verdict=verdict, text=text, action=action, jwks=jwks,
                                                              max_chars=MAX_RECORD_CHARS)


# --------------------------------------------------------------------------- PDF
def _fonts() -> tuple[str, str]:
    """DejaVu Sans (regular, bold), registered with ReportLab once: matplotlib (a dependency) ships the files."""
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "AIFW-Sans" not in pdfmetrics.getRegisteredFontNames():
        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("AIFW-Sans", str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("AIFW-Sans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
    return "AIFW-Sans", "AIFW-Sans-Bold"


def certificate_pdf(record: CompletionRecord) -> bytes:
    """The certificate as a PDF (the same content as the HTML page); the same record gives the same bytes."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = _fonts()
    s = record.setting
    accent, muted = colors.HexColor("#1f5fa8"), colors.HexColor("#5a6475")
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11, textColor=muted)
    bullet = ParagraphStyle("bullet", parent=body, leftIndent=10, bulletIndent=0, spaceAfter=1)
    centred = ParagraphStyle("centred", parent=body, alignment=TA_CENTER, fontSize=11, leading=15)
    heading = ParagraphStyle("heading", parent=body, fontName=bold, fontSize=9, leading=12, textColor=muted,
                             spaceBefore=8, spaceAfter=3)

    def para(text: str, style=body) -> Paragraph:
        return Paragraph(escape(text), style)

    story = [
        para(s.issuer.name.upper() + (f"  ·  {s.issuer.country}" if s.issuer.country else ""),
             ParagraphStyle("issuer", parent=centred, textColor=muted, fontSize=9)),
        Spacer(1, 3 * mm),
        para("Certificate of completion", ParagraphStyle("title", parent=centred, fontName=bold, fontSize=24, leading=30)),
        Spacer(1, 3 * mm),
        para("This is to certify that", ParagraphStyle("m1", parent=centred, textColor=muted)),
        para(record.learner, ParagraphStyle("learner", parent=centred, fontName=bold, fontSize=22, leading=30,
                                            textColor=accent)),
        para("has completed the course", ParagraphStyle("m2", parent=centred, textColor=muted)),
        para(record.course_title, ParagraphStyle("course", parent=centred, fontName=bold, fontSize=15, leading=21)),
        para(f"on {record.issued_day}, every module graded at {s.graded_percent:g}% or more.", centred),
        Spacer(1, 4 * mm),
        para("MODULES", heading),
    ]
    rows = [["Module", "Hours", "Graded"]] + [
        [Paragraph(escape(f"{m.title or m.id} ({m.id})"), body), f"{round(m.minutes / 60, 2):g}", m.percent_text]
        for m in record.modules]
    table = Table(rows, colWidths=[125 * mm, 20 * mm, 20 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), bold, 8), ("FONT", (0, 1), (-1, -1), regular, 9),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("TEXTCOLOR", (0, 0), (-1, 0), muted), ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#d6dbe4")), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, para("LEARNING OUTCOMES", heading)]
    story += [Paragraph(escape(o), bullet, bulletText="•") for o in s.learning_outcomes]
    facts = [("Awarding body", s.issuer.name + (f", {s.issuer.country}" if s.issuer.country else "")
              + (f" ({s.issuer.url})" if s.issuer.url else "")),
             ("Date of issue", record.issued_day),
             ("Notional workload", f"{record.workload_hours:g} hours"
              + (f" ({s.ects_credits:g} ECTS credits)" if s.ects_credits else "")),
             *([("Level", f"EQF level {s.eqf_level}")] if s.eqf_level else []),
             ("Type of assessment", s.assessment), ("Form of participation", s.participation.value),
             ("Quality assurance", s.quality_assurance),
             *([("Supervision and identity", s.supervision)] if s.supervision else []),
             ("Verification id", record.verification_id), ("Verify at", record.verify_url)]
    story.append(para("ABOUT THIS RECORD", heading))
    about = Table([[Paragraph(escape(k), small), Paragraph(escape(v), body)] for k, v in facts],
                  colWidths=[40 * mm, 125 * mm])
    about.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    story.append(about)

    def border(canvas, doc) -> None:
        canvas.saveState()
        canvas.setStrokeColor(accent)
        canvas.setLineWidth(1.5)
        canvas.rect(10 * mm, 10 * mm, A4[0] - 20 * mm, A4[1] - 20 * mm)
        canvas.setFont(regular, 7.5)
        canvas.setFillColor(muted)
        canvas.drawCentredString(A4[0] / 2, 13 * mm, f"Verification id {record.verification_id}  ·  {record.verify_url}")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=22 * mm, rightMargin=22 * mm, topMargin=17 * mm,
                            bottomMargin=19 * mm, title=f"{record.course_title}: completion record of {record.learner}",
                            author=s.issuer.name, subject=f"Completion record {record.verification_id}",
                            creator="AIF Workbench", invariant=1)
    doc.build(story, onFirstPage=border, onLaterPages=border)
    return out.getvalue()
