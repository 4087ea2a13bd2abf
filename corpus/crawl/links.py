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


def html_declared_charset(body: bytes) -> str | None:
    """The charset a page declares in <meta charset> or <meta http-equiv="Content-Type">, if it is
    one Python knows. (The HTTP header, when it names one, comes first; this comes before guessing.)"""
    import codecs

    from corpus.crawl.fetch import charset_param

    try:
        doc = lxml_html.document_fromstring(body[:64 * 1024], parser=lxml_html.HTMLParser(encoding="iso-8859-1"))
    except (etree.ParserError, ValueError):
        return None
    declared = doc.xpath("//meta/@charset")
    if not declared:
        contents = doc.xpath("//meta[translate(@http-equiv,'CONTENTYP','contentyp')='content-type']/@content")
        declared = [charset_param(c) for c in contents if charset_param(c)]
    for name in declared:
        try:
            return codecs.lookup(name.strip()).name
        except LookupError:
            continue
    return None


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
