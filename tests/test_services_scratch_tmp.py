from sqlalchemy import inspect
from app.audit.service import RequestMeta
from app.auth.service import resolve_token
from app.projects.service import project_create
from tests.conftest import SECRET


async def test_x(factory, sessionmaker):
    acct = await factory.account()
    async with sessionmaker() as s:
        actor = await resolve_token(s, token=acct.token, secret_key=SECRET)
        p = await project_create(
            s, actor=actor, meta=RequestMeta("r1", "127.0.0.1", "ua"), name="P1"
        )
        print(inspect(p).expired_attributes, p.created_at, p.updated_at, p.event_sequence)
        await s.commit()
