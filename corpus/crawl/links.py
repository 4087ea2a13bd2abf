"""Links out of HTML pages and URLs out of sitemaps, with lxml."""

from __future__ import annotations

from urllib.parse import urljoin

from lxml import etree
from lxml import html as lxml_html

HTML_TYPES = ("text/html", "application/xhtml+xml")


def html_links(body: bytes, url: str, charset: str | None) -> tuple[list[str], bool]:
    """(hrefs made absolute, whether the page's robots meta says nofollow).

    `<base href>` is honoured; hrefs are returned raw-but-absolute, the caller normalises them.
    """
    try:
        parser = lxml_html.HTMLParser(encoding=charset) if charset else lxml_html.HTMLParser()
    except LookupError:
        parser = lxml_html.HTMLParser()
    try:
        doc = lxml_html.document_fromstring(body, parser=parser)
    except (etree.ParserError, ValueError, LookupError):
        return [], False
    robots = " ".join(doc.xpath("//meta[translate(@name,'ROBTS','robts')='robots']/@content")).lower()
    nofollow = "nofollow" in robots or "none" in robots.split(",")
    base = url
    declared = doc.xpath("//base/@href")
    if declared and declared[0].strip():
        base = urljoin(url, declared[0].strip())
    hrefs = [h.strip() for h in doc.xpath("//a/@href | //area/@href") if h and h.strip()]
    return [urljoin(base, h) for h in hrefs], nofollow


class SitemapError(ValueError):
    pass


def sitemap_urls(body: bytes) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex", the <loc> URLs). No entities resolved, nothing fetched."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as e:
        raise SitemapError(f"not well-formed XML: {e}") from None
    kind = etree.QName(root).localname
    if kind == "urlset":
        locs = root.xpath("./*[local-name()='url']/*[local-name()='loc']/text()")
    elif kind == "sitemapindex":
        locs = root.xpath("./*[local-name()='sitemap']/*[local-name()='loc']/text()")
    else:
        raise SitemapError(f"root element is <{kind}>, not <urlset> or <sitemapindex>")
    return kind, [loc.strip() for loc in locs if loc.strip()]
