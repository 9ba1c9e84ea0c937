/* main.c: placeholder until the subcommand table lands. */
int main(void);

int main(void)
{
    return 0;
}
