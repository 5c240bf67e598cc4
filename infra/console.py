"""The web console in the serverless lab: served by the system function, signed in at Cognito.

The console's files are package data of ``annotrain`` (``annotrain/web/static/``),
so the Lambda bundle already holds them and the system function's app serves them
(``annotrain.api.console``). This construct adds what the HTTP API and the user
pool need for that: the console's three routes, without the JWT authorizer (static
files and the sign-in config; every API call the console makes carries a token),
the user pool's hosted-UI domain, and the app client's authorization code grant
with the console's address as its callback, which the console uses with PKCE.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Fn
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.nag import Ack, acknowledge

#: The console's routes (``annotrain.api.console``), all GET.
CONSOLE_PATHS: Sequence[str] = ("/", "/assets/{name}", "/console/config.json")
#: What the console asks Cognito for: an access token the API's authorizer takes.
CONSOLE_SCOPES: Sequence[str] = ("openid", "email", "profile")


class LabConsole(Construct):
    """The console's routes, the hosted-UI domain and the client's code grant.

    Args:
        scope: The Api stack.
        construct_id: The construct's id.
        user_pool: The lab's user pool.
        client: The app client (no secret) whose tokens the API accepts.
        http_api: The HTTP API; the console lives at its root.
        function: The function that serves the console (the system group's).

    Attributes:
        domain: The hosted-UI domain (``annotrain-<account>-<region>``).
        routes: The console's routes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        user_pool: cognito.UserPool,
        client: cognito.UserPoolClient,
        http_api: apigw.HttpApi,
        function: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        # Domain prefixes are unique per region: the account makes this one the lab's.
        self.domain = user_pool.add_domain(
            "HostedUi",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=Fn.join("-", ["annotrain", Aws.ACCOUNT_ID, Aws.REGION])
            ),
        )
        console_url = f"{http_api.api_endpoint}/"
        cfn_client = client.node.default_child
        assert isinstance(cfn_client, cognito.CfnUserPoolClient)
        # Set on the client made with the pool: its callback is the API's own address,
        # which exists only once the API does.
        cfn_client.allowed_o_auth_flows = ["code"]
        cfn_client.allowed_o_auth_flows_user_pool_client = True
        cfn_client.allowed_o_auth_scopes = list(CONSOLE_SCOPES)
        cfn_client.callback_ur_ls = [console_url]
        cfn_client.logout_ur_ls = [console_url]
        cfn_client.supported_identity_providers = ["COGNITO"]
        function.add_environment("ANNOTRAIN_COGNITO_DOMAIN", self.domain.base_url())
        function.add_environment("ANNOTRAIN_COGNITO_CLIENT_ID", client.user_pool_client_id)
        integration = integrations.HttpLambdaIntegration("ConsoleIntegration", function)
        self.routes: list[apigw.HttpRoute] = []
        for path in CONSOLE_PATHS:
            self.routes.extend(
                http_api.add_routes(
                    path=path,
                    methods=[apigw.HttpMethod.GET],
                    integration=integration,
                    authorizer=apigw.HttpNoneAuthorizer(),
                )
            )
        for route in self.routes:
            acknowledge(
                route,
                Ack(
                    "AwsSolutions-APIG4",
                    "The web console's static files and sign-in config are public by "
                    "design; every API call the console makes carries a Cognito token "
                    "(docs/console.md).",
                ),
            )
