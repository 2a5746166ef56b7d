"""Products on booths, their assets (metadata only until uploads land) and the expo's facets."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from server.api.deps import (
    BlobsDep,
    CategoryFilter,
    CountryFilter,
    CurrentUser,
    PageDep,
    SearchFilter,
    SessionDep,
    SettingsDep,
    apply_changes,
    check_booth_owner,
    escape_like,
    get_or_404,
)
from server.api.schemas import (
    AssetCreate,
    AssetPublic,
    ErrorResponse,
    Facet,
    Facets,
    Page,
    ProductCreate,
    ProductPublic,
    ProductUpdate,
)
from server.db.models import AssetKind, AssetStatus, Booth, Expo, Hall, Product, ProductAsset
from server.errors import Conflict, Invalid
from server.storage.base import BlobStore
from server.uploads import check_product_quota

router = APIRouter(tags=["products"])


def product_public(product: Product, blobs: BlobStore) -> ProductPublic:
    public = ProductPublic.model_validate(product)
    photo = next(
        (
            a
            for a in product.assets
            if a.kind is AssetKind.photo and a.status is AssetStatus.ready and a.blob_key
        ),
        None,
    )
    public.photo_url = blobs.url(photo.blob_key) if photo and photo.blob_key else None
    return public


def asset_public(asset: ProductAsset, blobs: BlobStore) -> AssetPublic:
    public = AssetPublic.model_validate(asset)
    ready = asset.status is AssetStatus.ready and asset.blob_key
    public.url = blobs.url(asset.blob_key) if ready and asset.blob_key else None
    return public


def _product_page(
    session: Session, page: PageDep, blobs: BlobStore, stmt: Select[Product]
) -> dict[str, object]:
    result = page.page(session, stmt.options(selectinload(Product.assets)))
    result["items"] = [product_public(p, blobs) for p in result["items"]]
    return result


def _filtered(
    stmt: Select[Product], country: str | None, category: str | None, q: str | None
) -> Select[Product]:
    if country:
        stmt = stmt.where(Product.country == country)
    if category:
        stmt = stmt.where(Product.category == category)
    if q:
        stmt = stmt.where(func.lower(Product.name).like(f"%{escape_like(q.lower())}%", escape="\\"))
    return stmt.order_by(Product.category, Product.name, Product.id)


def _unique_name(
    session: SessionDep, booth_id: uuid.UUID, name: str, own: uuid.UUID | None
) -> None:
    existing = session.scalar(
        select(Product.id).where(Product.booth_id == booth_id, Product.name == name)
    )
    if existing is not None and existing != own:
        raise Conflict("this booth has a product with this name", code="product_exists")


@router.get("/booths/{booth_id}/products", response_model=Page[ProductPublic])
def list_booth_products(
    booth_id: uuid.UUID,
    session: SessionDep,
    blobs: BlobsDep,
    page: PageDep,
    country: CountryFilter = None,
    category: CategoryFilter = None,
    q: SearchFilter = None,
) -> dict[str, object]:
    """The products on a booth."""
    get_or_404(session, Booth, booth_id, "booth")
    stmt = _filtered(select(Product).where(Product.booth_id == booth_id), country, category, q)
    return _product_page(session, page, blobs, stmt)


@router.get("/expos/{expo_id}/products", response_model=Page[ProductPublic])
def list_expo_products(
    expo_id: uuid.UUID,
    session: SessionDep,
    blobs: BlobsDep,
    page: PageDep,
    country: CountryFilter = None,
    category: CategoryFilter = None,
    q: SearchFilter = None,
) -> dict[str, object]:
    """Every product of an expo, filtered by category, country of origin or name."""
    get_or_404(session, Expo, expo_id, "expo")
    booths = select(Booth.id).join(Hall, Booth.hall_id == Hall.id).where(Hall.expo_id == expo_id)
    stmt = _filtered(select(Product).where(Product.booth_id.in_(booths)), country, category, q)
    return _product_page(session, page, blobs, stmt)


@router.get("/expos/{expo_id}/facets", response_model=Facets)
def expo_facets(expo_id: uuid.UUID, session: SessionDep) -> Facets:
    """The categories and countries of an expo's products, with counts, for filter menus."""
    get_or_404(session, Expo, expo_id, "expo")
    booths = select(Booth.id).join(Hall, Booth.hall_id == Hall.id).where(Hall.expo_id == expo_id)
    in_expo = Product.booth_id.in_(booths)

    def facet(column: object) -> list[Facet]:
        rows = session.execute(
            select(column, func.count()).where(in_expo).group_by(column).order_by(column)  # type: ignore[call-overload]
        )
        return [Facet(value=value, count=count) for value, count in rows]

    return Facets(categories=facet(Product.category), countries=facet(Product.country))


@router.post(
    "/booths/{booth_id}/products",
    response_model=ProductPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        429: {"model": ErrorResponse, "description": "The product quota (`quota_products`)"}
    },
)
def create_product(
    booth_id: uuid.UUID,
    body: ProductCreate,
    principal: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Product:
    """Add a product to a booth: its exhibitor or an admin (429 past the organisation's quota)."""
    booth = get_or_404(session, Booth, booth_id, "booth")
    check_booth_owner(principal, booth)
    check_product_quota(session, booth.organisation_id, settings.limits)
    _unique_name(session, booth_id, body.name, None)
    product = Product(booth_id=booth_id, **body.model_dump())
    session.add(product)
    session.flush()
    return product


@router.get("/products/{product_id}", response_model=ProductPublic)
def get_product(product_id: uuid.UUID, session: SessionDep, blobs: BlobsDep) -> ProductPublic:
    """One product."""
    return product_public(get_or_404(session, Product, product_id, "product"), blobs)


@router.patch("/products/{product_id}", response_model=ProductPublic)
def update_product(
    product_id: uuid.UUID,
    body: ProductUpdate,
    principal: CurrentUser,
    session: SessionDep,
    blobs: BlobsDep,
) -> ProductPublic:
    """Change a product: its booth's exhibitor or an admin."""
    product = get_or_404(session, Product, product_id, "product")
    check_booth_owner(principal, product.booth)
    if body.name:
        _unique_name(session, product.booth_id, body.name, product.id)
    apply_changes(product, body, nullable=frozenset({"price", "currency", "link"}))
    if product.price is not None and product.currency is None:
        raise Invalid("a price needs a currency")
    session.flush()
    return product_public(product, blobs)


@router.delete("/products/{product_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_product(product_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> None:
    """Remove a product: its booth's exhibitor or an admin."""
    product = get_or_404(session, Product, product_id, "product")
    check_booth_owner(principal, product.booth)
    session.delete(product)


@router.get("/products/{product_id}/assets", response_model=Page[AssetPublic])
def list_assets(
    product_id: uuid.UUID, session: SessionDep, blobs: BlobsDep, page: PageDep
) -> dict[str, object]:
    """A product's uploaded files and their processing status."""
    get_or_404(session, Product, product_id, "product")
    stmt = select(ProductAsset).where(ProductAsset.product_id == product_id)
    result = page.page(session, stmt.order_by(ProductAsset.created_at, ProductAsset.id))
    result["items"] = [asset_public(a, blobs) for a in result["items"]]
    return result


@router.post(
    "/products/{product_id}/assets", response_model=AssetPublic, status_code=status.HTTP_201_CREATED
)
def create_asset(
    product_id: uuid.UUID, body: AssetCreate, principal: CurrentUser, session: SessionDep
) -> ProductAsset:
    """Record an asset for a product (metadata; the upload flow fills in the file)."""
    product = get_or_404(session, Product, product_id, "product")
    check_booth_owner(principal, product.booth)
    asset = ProductAsset(product_id=product.id, booth_id=product.booth_id, **body.model_dump())
    session.add(asset)
    session.flush()
    return asset


@router.delete("/assets/{asset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_asset(asset_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> None:
    """Remove an asset: its booth's exhibitor or an admin."""
    asset = get_or_404(session, ProductAsset, asset_id, "asset")
    check_booth_owner(principal, get_or_404(session, Booth, asset.booth_id, "booth"))
    session.delete(asset)
